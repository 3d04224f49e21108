"""The network and its files: ColorUNet, loss, annealed-mean decoding, checkpoint and bundle formats, router, device."""
