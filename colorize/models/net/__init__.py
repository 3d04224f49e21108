"""The network and its files: ColorUNet, loss, annealed-mean decoding, checkpoint and bundle formats, router, device."""

# The annealed-mean temperature every command decodes with unless told otherwise (Zhang et al. 2016's
# compromise between vivid and smooth; bench_quality measured 0.38 tied with 0.2). One source: the CLI,
# TrainConfig, predict, eval, turing and the demo read it from here.
DEFAULT_TEMPERATURE = 0.38
