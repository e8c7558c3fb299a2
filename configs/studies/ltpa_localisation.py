"""Study: do the learned attention maps localise objects better than CAM-style maps (Learn To Pay
Attention, claim 2)?

Command:
  python -m lpta.study --config=configs/studies/ltpa_localisation.py

The networks of configs/ltpa_small.py on the translated canvases (whose boxes make localisation
measurable): VGG, VGG-att2 and VGG-att3, seeds 0, 1, 2, each trained for one epoch on the first
25,000 training canvases (the last 5,000 of them the validation split) instead of two epochs of the
55,000, so that the 9 runs fit a sitting on 2 CPU cores; at the end of each run the localisation
evaluator scores the first 2,000 test canvases with every map kind the network has (attention,
activation, Grad-CAM; the VGG has the last two) and the centre baseline. Claim (Jetley et al. 2018,
Table 4: Jaccard on Object Discovery, att3 against the VGG's CAM-style maps): the learned maps beat
activation maps and Grad-CAM of the VGG, and the centre baseline.
"""

from lpta.evaluators import localisation

SEEDS = (0, 1, 2)
RECIPE = {'config.num_epochs': 1, 'config.data.train_split': 'train[:25000]'}  # every arm's
ARMS = {model: {'config': f'configs/ltpa_small.py:translated,{model}', **RECIPE}
        for model in ('vgg', 'att2', 'att3')}
KINDS = ('attention', 'activation', 'gradcam', localisation.CENTRE)
METRICS = ('test_accuracy', *(f'localisation/{score}_{kind}' for score in localisation.METRICS
                              for kind in KINDS))
COMPARISONS = tuple(
    (arm, other, f'localisation/{score}_attention', f'LTPA Table 4: learned maps localise '
     f'better than the {kind}', 0., f'localisation/{score}_{kind}')
    for arm in ('att3', 'att2') for score in ('pointing', 'jaccard')
    for other, kind in (('vgg', 'activation'), ('vgg', 'gradcam'), (arm, localisation.CENTRE)))


def get_hyper(h):
  return h.product([h.sweep('arm', list(ARMS)), h.sweep('config.seed', SEEDS)])
