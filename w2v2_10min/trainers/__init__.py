"""Trainers of the fine-tuning recipe other than fairseq-hydra-train (w2v2_10min/finetune.py).

`transformers_trainer.train(cfg, manifests, run_folder)`: the same composed recipe trained with
transformers' `Trainer` on `Wav2Vec2ForCTC`, update by update as fairseq trains it.
"""
