"""w2v2-10min: what the pipeline's stages share, and each stage's logic.

`scripts/<module>.py` are the command-line entry points (called by the Makefile); each runs
`main()` of the module here with the same name: `download`, `checkpoints`, `manifests`,
`finetune`, `decode`, `tune_lm`, `hf_export`, `lexicon`, `score`, `compare`.
What the stages share:
  `common`    one-line errors, atomic writes, checksums, provenance, stage lines
  `layout`    a run's identity (RunId) and where every run, decode and cache lives
  `stage`     the preamble of each stage after fine-tuning: the run and its identity (from
              RUN/run.json), input checks, device, fairseq's log and failures
  `emissions` a model's emissions (computed, cached) and the reference words
  `records`   a decoded subset's hyp.wrd, ref.wrd and wer.json
  `decoders/` one module per decoder (viterbi, fourgram: DECODER=4gram, transformer), for
              decode and tune_lm (the protocol in decoders/__init__.py), their searches in
              `lm` (KenLM's, and what LM decoders share) and `transformer_search`
  `formats` (fairseq's files), `paper` (Table 9), `knobs` (what each Make knob accepts),
  `loading` (released checkpoint layouts), `lm` (KenLM lexicon beam search), `fast` (FAST=1),
  `stats` (the statistics), `analysis` (the one analysis of `compare`'s report), `tables`
  (its text), `plots` (its figures)
"""
