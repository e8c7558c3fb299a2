"""The shared base of every LTPA config: (VGG-att3)-concat-pc on CIFAR-100, the official recipe.

Not meant to be run directly; the experiment configs import it and change what differs. Every
field is documented where it is set. Override any field from the command line, e.g.
`--config.model.width=0.5 --config.num_epochs=10`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, data order, augmentation and dropout all derive from it

  config.data = data = ml_collections.ConfigDict()
  data.name = 'cifar100'  # cifar10, cifar100, svhn_cropped, fashion_mnist, imagenet2012, synthetic
  # TFDS data dir; None = $TFDS_DATA_DIR or ~/tensorflow_datasets.
  data.data_dir = ml_collections.config_dict.placeholder(str)
  # Downloaded archives for offline preparation; None = <data_dir>/downloads/manual.
  data.manual_dir = ml_collections.config_dict.placeholder(str)
  data.zca = False  # ZCA whitening fitted on the training split (after per-channel mean/std)
  data.zca_epsilon = 1e-2
  data.random_crop_padding = 4  # random crop after zero-padding by this many pixels; 0 = off
  data.random_flip = True  # random horizontal flips (off for digits)
  data.train_split = 'train'  # or a subset for short runs, e.g. 'train[:15000]'
  # Side of the crops of a streamed data set (imagenet2012); None = 224. Others keep their size.
  data.image_size = ml_collections.config_dict.placeholder(int)
  data.synthetic_image_shape = (32, 32, 3)  # only for data.name = 'synthetic' (benchmarks)
  data.synthetic_num_classes = 100
  data.synthetic_num_train = 50_000
  data.synthetic_num_test = 10_000

  config.model = model = ml_collections.ConfigDict()
  model.name = 'attention_vgg'  # 'attention_vgg' (LTPA) or 'vgg' (baseline VGG-16)
  model.num_levels = 3  # att3: local features at convs 7, 10, 13; att2: 10, 13; att1: 13; 0: none
  model.compatibility = 'pc'  # 'pc': <u, l + g>; 'dp': <l, g>
  model.normalisation = 'softmax'  # 'softmax' over positions; 'sigmoid' gates + average pooling
  model.projection = 'g_down'  # conv 7 is narrower than g: 'g_down' (official) or 'l_up' (port)
  model.score_bias = True  # bias of u (official: yes; PyTorch port: no)
  model.placement = 'before'  # local features taken 'before' or 'after' the following max-pool
  model.head = 'concat'  # 'concat': one classifier on [g_a^1..g_a^n]; 'indep': one per level
  model.head_preactivation = True  # BN-ReLU-Dropout on each g_a before the classifier (official)
  model.dropout = True  # the official dropout rates (.3/.4 in the backbone, .5 before FC-1)
  model.width = 1.0  # channel multiplier; 1.0 is the paper's network
  model.bn_epsilon = 1e-3  # official Torch code; the PyTorch port uses 1e-5

  config.optimizer = optimizer = ml_collections.ConfigDict()
  optimizer.learning_rate = 0.1  # = the official lr 1.0 with Torch7's damped momentum (seed §1.10)
  optimizer.momentum = 0.9
  optimizer.nesterov = False
  optimizer.weight_decay = 5e-4  # added to the gradient of every parameter
  optimizer.schedule = 'step'  # 'step', 'multistep', 'cosine' or 'constant'
  optimizer.decay_factor = 0.5  # 'step': halve ...
  optimizer.decay_every_epochs = 25  # ... every 25 epochs
  optimizer.decay_epochs = (60, 120, 160)  # 'multistep' only

  config.batch_size = 128  # global, over all devices
  config.eval_batch_size = 512  # a power of two divides any device count up to 512
  config.num_epochs = 300
  config.half_precision = False  # bfloat16 compute, float32 parameters

  config.eval_every_epochs = 1  # evaluation, attention figures and checkpoints
  config.log_every_steps = 100
  config.keep_checkpoints = 2  # the latest ones ...
  config.keep_best_checkpoints = 1  # ... and the best by test accuracy
  config.num_attention_images = 8  # test images in the attention figures; 0 = none

  # Attention transfer (lpta/objectives.py); 'none' trains with cross-entropy alone.
  config.transfer = transfer = ml_collections.ConfigDict()
  transfer.method = 'none'  # 'none', 'at', 'kd', 'at_kd', 'grad_at' or 'flip_sym'
  transfer.at_form = 'code'  # 'code': β·mean (Q_s − Q_t)²; 'paper': (β/2)·‖Q_s − Q_t‖₂
  transfer.beta = 1000.  # weight of the transfer term
  transfer.beta_schedule = 'constant'  # 'constant', 'linear' or 'cosine' decay over training
  transfer.p = 2.  # attention map = Σ_c |A_c|^p, normalised
  transfer.temperature = 4.  # KD
  transfer.alpha = 0.9  # KD weight; (1 − α) on the cross-entropy with the labels
  config.teacher = ml_collections.ConfigDict()
  config.teacher.workdir = ml_collections.config_dict.placeholder(str)  # an earlier lpta run
  return config
