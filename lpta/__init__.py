"""lpta: attention in convolutional networks, in JAX/Flax.

Learn To Pay Attention (VGG attention estimators), attention transfer and glimpse models on one
sharded train loop. See README.md.
"""
