"""Study: does attention improve classification over the same VGG (Learn To Pay Attention, claim 1)?

Command:
  python -m lpta.study --config=configs/studies/ltpa_classification.py

The networks of configs/ltpa_small.py on Fashion-MNIST (the quickstart's recipe and width, but one
epoch of the 55,000 training images instead of three, so that the 12 runs fit a sitting on 2 CPU
cores: about 5 minutes each), VGG, VGG-att2, VGG-att3 (pc) and VGG-att3 (dp), seeds 0, 1, 2; each
run also runs the FGSM, PGD and probe evaluators at its end, whose results ltpa_robustness.py and
ltpa_cross_domain.py read from the same runs. Claims (Jetley et al. 2018, Table 1: CIFAR-100 error
30.62 VGG, 24.18 att2, 22.97 att3-pc, 23.89 att3-dp): att3 and att2 beat the VGG, att3 beats att2,
pc beats dp.
"""

SEEDS = (0, 1, 2)
RECIPE = {'config.num_epochs': 1}  # the same for every arm
ARMS = {model: {'config': f'configs/ltpa_small.py:fashion_mnist,{model}', **RECIPE}
        for model in ('vgg', 'att2', 'att3', 'att3_dp')}
METRICS = ('test_accuracy', 'test_loss')
COMPARISONS = (
    ('att3', 'vgg', 'test_accuracy', 'LTPA Table 1: attention beats the VGG'),
    ('att2', 'vgg', 'test_accuracy', 'LTPA Table 1: attention beats the VGG'),
    ('att3', 'att2', 'test_accuracy', 'LTPA Table 1: att3 beats att2'),
    ('att3', 'att3_dp', 'test_accuracy', 'LTPA Table 1: pc beats dp'),
)


def get_hyper(h):
  return h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', SEEDS)])
