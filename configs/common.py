"""The fields every lpta run has, with their defaults. Not meant to be run directly.

The family bases build on it: configs/ltpa.py (Learn To Pay Attention) and
configs/attention_transfer.py (wide and ImageNet ResNets); they add the model and the paper's
recipe, and each experiment config changes what differs. Every field is documented where it is
set. Override any field from the command line, e.g. `--config.num_epochs=10`.
"""

import ml_collections

placeholder = ml_collections.config_dict.placeholder


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, data order, augmentation and dropout all derive from it

  # The data set (lpta/data/__init__.py).
  config.data = data = ml_collections.ConfigDict()
  # cifar10, cifar100, svhn_cropped, fashion_mnist, translated_fashion_mnist,
  # cluttered_fashion_mnist, caltech_birds2011, imagenet2012, stanford_dogs or synthetic
  data.name = placeholder(str)
  data.data_dir = placeholder(str)  # TFDS data dir; None = $TFDS_DATA_DIR or ~/tensorflow_datasets
  data.manual_dir = placeholder(str)  # archives for offline preparation; None = <data_dir>/downloads/manual
  data.train_split = 'train'  # or a subset for short runs, e.g. 'train[:15000]'
  # Examples at the end of train_split held out to rank the best checkpoints; 0 = none (the
  # papers' protocol: train on all of train and report the final test accuracy).
  data.validation_split = 0
  data.zca = False  # ZCA whitening fitted on the training split (after per-channel mean/std)
  data.zca_epsilon = 1e-2
  data.random_crop_padding = 4  # random crop after zero-padding by this many pixels; 0 = off
  data.random_flip = True  # random horizontal flips (off for digits)
  # Side of the crops of a streamed data set (imagenet2012, stanford_dogs; None = 224) and of
  # caltech_birds2011 (None = 80). Others keep their size.
  data.image_size = placeholder(int)
  # Only for caltech_birds2011 (lpta/data/cub.py): crop each bird to its box (the LTPA protocol),
  # or False: the whole image, with the box and segmentation in evaluation batches.
  data.crop_to_box = True
  data.synthetic_image_shape = (32, 32, 3)  # only for data.name = 'synthetic' (benchmarks, tests)
  data.synthetic_num_classes = 100
  data.synthetic_num_train = 50_000
  data.synthetic_num_test = 10_000
  # Only for translated_fashion_mnist and cluttered_fashion_mnist (lpta/data/canvases.py).
  data.canvas_size = 60  # side of the canvas the 28×28 item is placed on
  data.clutter_pieces = 0  # pieces of other images per canvas (cluttered_fashion_mnist: > 0)
  data.clutter_piece_size = 8  # side of each piece

  # The network: `name` picks the model family (lpta/families), which reads its own fields.
  config.model = ml_collections.ConfigDict({'name': placeholder(str)})

  config.optimizer = optimizer = ml_collections.ConfigDict()
  optimizer.name = 'sgd'  # 'sgd' (with momentum) or 'adam'
  optimizer.learning_rate = 0.1
  optimizer.momentum = 0.9  # 'sgd' only
  optimizer.nesterov = False  # 'sgd' only
  # 'sgd' only: Torch7's damped momentum v = μ·v + (1 − d)·g (Torch7 defaults d to μ: the
  # official LTPA recipe is lr 1, d = 0.9, about lr 0.1 undamped); 0 = PyTorch's/optax's SGD.
  optimizer.dampening = 0.
  optimizer.adam_betas = (0.9, 0.999)  # 'adam' only
  optimizer.weight_decay = 5e-4  # added to the gradient of every parameter
  optimizer.schedule = 'step'  # 'step', 'multistep', 'cosine' or 'constant'
  optimizer.decay_factor = 0.5  # 'step' and 'multistep': the factor of each decay
  optimizer.decay_every_epochs = 25  # 'step' only
  optimizer.decay_epochs = (60, 120, 160)  # 'multistep' only
  optimizer.decay_factors = ()  # 'multistep': one factor per decay epoch; () = decay_factor each

  config.batch_size = 128  # global, over all devices
  config.eval_batch_size = 512  # a power of two divides any device count up to 512
  config.num_epochs = 300
  config.half_precision = False  # bfloat16 compute, float32 parameters

  config.eval_every_epochs = 1  # evaluation, figures and checkpoints
  config.log_every_steps = 100  # training scalars, and the check that the loss is finite
  config.keep_checkpoints = 2  # the latest ones ...
  config.keep_best_checkpoints = 1  # ... and the best by validation accuracy (if validating)
  config.num_attention_images = 8  # test images in the attention figures; 0 = none
  # Evaluators (lpta/evaluators/) run during training on the checkpoint just saved, as
  # python -m lpta.evaluate would: {name: {every_epochs, and any of the evaluator's fields}}, e.g.
  # config.evals.fgsm = ml_collections.ConfigDict({'every_epochs': 5, 'max_examples': 500}).
  config.evals = ml_collections.ConfigDict()

  # The objective (lpta/objectives.py); 'none' trains with cross-entropy alone.
  config.transfer = transfer = ml_collections.ConfigDict()
  transfer.method = 'none'  # 'none', 'at', 'kd', 'at_kd', 'grad_at' or 'flip_sym'
  transfer.at_form = 'code'  # 'code': β·mean (Q_s − Q_t)²; 'paper': (β/2)·‖Q_s − Q_t‖₂
  transfer.beta = 1000.  # weight of the transfer term
  transfer.beta_schedule = 'constant'  # 'constant', 'linear' or 'cosine' decay over training
  transfer.p = 2.  # attention map = Σ_c |A_c|^p, normalised
  transfer.temperature = 4.  # KD
  transfer.alpha = 0.9  # KD weight; (1 − α) on the cross-entropy with the labels
  config.teacher = ml_collections.ConfigDict()
  config.teacher.workdir = placeholder(str)  # the workdir of an earlier lpta run

  # Fine-tuning (lpta/fine_tuning.py): start from the parameters and BatchNorm statistics of
  # another run; what fits is loaded, the classifier of another class count re-initialised.
  config.init_from = init_from = ml_collections.ConfigDict()
  init_from.workdir = placeholder(str)  # None: train from scratch
  init_from.step = 'latest'  # 'latest', 'best' (by validation accuracy) or a step number
  init_from.exclude = ()  # module paths to re-initialise anyway, e.g. ('global',)
  return config
