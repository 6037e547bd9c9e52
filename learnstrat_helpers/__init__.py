"""learnstrat_helpers: the plumbing behind the learnstrat notebooks.

One module per concept; import what you need, e.g. ``from learnstrat_helpers import datasets``.
Importing the package has no side effects (no seeds, downloads or prints).

- profiles: how big a run is (quick / default / full), one table
- assets:   where models and data come from, offline first, with clear errors
- datasets: SST-2, Fashion-MNIST, validated, in the Hub's schema
- text:     a frozen sentence encoder and cached embeddings
- vision:   EfficientNet-Lite0 in plain torch, cut anywhere
- training: seeding and one training loop for every notebook
- finetuning: notebook 02's tokenised batches, fine-tuning loop, LoRA
- ner_re:   notebook 03's task: CoNLL04, BIO tags, entity pairs, end-to-end prediction, strict F1
- multitask: notebook 03's joint NER + RE model, soft sharing, the tasks' losses, training via fit
- metrics:  accuracy and friends
- results:  headline numbers into build/results/<notebook>.json
- claims:   the claims-vs-evidence check that ends every notebook
- plots:    one function per kind of figure
"""

__version__ = "0.1.0"
