"""fairseq user_dir plugin of w2v2-10min: what fairseq needs changed at run time; fairseq's
files are never changed.

fairseq imports this folder when a config sets `common.user_dir` to it (the recipes' `plugin`
group does: `recipes/finetune/plugin/w2v2.yaml`); importing it registers the components in its
submodules with fairseq's registries, under names of their own, so fairseq's own components
stay as they are. Three submodules wrap a fairseq function in the running process instead, each
saying why: `seeded_draws` (two methods of the model its task builds, on that instance, and
fairseq's `compute_mask_indices` while its `apply_mask` runs), `checkpoint_budget` (installed
by the fast task once training begins) and `wandb_once` (on import). A checkpoint trained with
the plugin records `common.user_dir`; decoding points that at this folder again wherever the
checkpoint is read.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
