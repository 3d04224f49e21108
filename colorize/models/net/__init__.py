"""The network and its files: ColorUNet, loss, annealed-mean decoding, checkpoint and bundle formats, router, device."""

# The annealed-mean temperature every command decodes with unless told otherwise (Zhang et al. 2016's
# compromise between vivid and smooth; bench_quality measured 0.38 tied with 0.2). One source: the CLI,
# TrainConfig, predict, eval, turing and the demo read it from here.
DEFAULT_TEMPERATURE = 0.38

# The base channel width of a ColorUNet (`--width`): 16 was measured as good as 32 on small data at a
# quarter of the compute (benchmarks/bench_quality.py). ColorUNet, TrainConfig and the checkpoint reader use it.
DEFAULT_WIDTH = 16

# The least router probability at which a bundle colours a photo with the route's specialist rather than
# the global model (`predict --min-confidence`). A probability in 0..1, unlike scrape's keyword score
# (`scraper/defaults.py` MIN_KEYWORD_SCORE, `scrape --dataset --min-confidence`).
ROUTER_MIN_CONFIDENCE = 0.5
