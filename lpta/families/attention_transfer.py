"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): wide ResNets and ImageNet ResNets.

Models (`config.model.name`) and their fields (FIELDS below):
  'wrn': the CIFAR WRN-d-k (lpta.models.resnet.WideResNet);
  'resnet': an ImageNet ResNet (lpta.models.resnet.ResNet), torchvision's post-activation
    blocks, or the pre-activation ResNet-18/34 of the AT export (python -m lpta.import_weights).
Attention is transferred at the group outputs. The figure shows the activation attention map
Q = Σ_c |A_c|² of each group output (lpta.losses.activation_attention_map), min-max scaled per
image, next to the teacher's when there is one.
"""

from lpta import config_fields as cf
from lpta import families
from lpta import losses
from lpta import summaries
from lpta.errors import ConfigError
from lpta.models import resnet

FIELDS = {
    'wrn': (cf.Field('depth', 16, 'Depth 6n + 4: n blocks per group.'),
            cf.Field('widen_factor', 1, 'k: the groups have 16k, 32k and 64k channels.')),
    'resnet': (cf.Field('depth', 18, f'One of {", ".join(map(str, resnet.RESNET_STAGE_SIZES))}.'),
               cf.Field('preactivation', False, "False: torchvision's post-activation blocks; "
                        "True: the pre-activation blocks of AT's resnet-18-at-export.pth.",
                        added=False)),
}


@families.register
class AttentionTransferNetworks(families.Family):
  """Residual networks whose group outputs are attention-transfer points. No dropout."""
  name = 'attention_transfer'
  fields = FIELDS

  def validate(self) -> None:
    config = self.model_config
    if config.name == 'wrn':
      resnet.wrn_blocks_per_group(config.depth, field='config.model.depth')
      resnet.wrn_group_widths(config.widen_factor, field='config.model.widen_factor')
    else:
      if config.depth not in resnet.RESNET_STAGE_SIZES:
        raise ConfigError(f'config.model.depth={config.depth!r} is not an ImageNet ResNet '
                          f'depth; use one of {", ".join(map(str, resnet.RESNET_STAGE_SIZES))}.')
      resnet.check_preactivation(config.preactivation,
                                 config.depth in resnet.RESNET_BOTTLENECK_DEPTHS,
                                 field='config.model.preactivation')

  def build(self, num_classes, dtype):
    config = self.model_config
    if config.name == 'wrn':
      return resnet.WideResNet(depth=config.depth, widen_factor=config.widen_factor,
                               num_classes=num_classes, dtype=dtype)
    return resnet.ResNet(stage_sizes=resnet.RESNET_STAGE_SIZES[config.depth],
                         num_classes=num_classes,
                         bottleneck=config.depth in resnet.RESNET_BOTTLENECK_DEPTHS,
                         preactivation=config.preactivation, dtype=dtype)

  def transfer_points(self, aux):
    return tuple(aux['group_activations'])

  def figure_arrays(self, aux):
    return tuple(
        summaries.min_max_scale(losses.activation_attention_map(a).reshape(a.shape[:3]))
        for a in aux['group_activations'])
