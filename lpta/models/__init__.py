"""Flax modules: the attention estimator, VGGs (vgg.py) and residual networks (resnet.py).

Which module a config builds, and how it is trained and drawn, is decided by its family
(lpta.families).
"""
