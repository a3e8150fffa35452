"""w2v2-10min: what the pipeline's stages share, and each stage's logic.

`scripts/<stage>.py` are the command-line entry points (called by the Makefile); each runs
`main()` of the module here with the same name. Shared: `common` (errors, atomic writes,
provenance), `formats` (fairseq's manifest and dictionary formats), `paper` (Table 9),
`layout` (where runs and decodes live), `scoring` (WER/CER), `checkpoints` (released files,
checksums).
"""
