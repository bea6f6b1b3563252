"""Training engine: config composition (Hydra + Sacred), data loading, the training loop, distributed
launch, checkpoints and periodic evaluation. The entry point is `wsovvis.engine.launch.main`."""

import warnings

# sacred 0.8.7 imports pkg_resources (hence the setuptools<82 pin), which warns on every run;
# the warning is about sacred, not about anything a user of this package can change.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
