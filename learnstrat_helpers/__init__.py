"""learnstrat_helpers: the plumbing behind the learnstrat notebooks; importing it has no side effects. One module per
concept (``from learnstrat_helpers import datasets``): profiles (how big a run is), assets (where models and data come
from), datasets (validated, in the Hub's schema), training (seeds and the one training loop), text (a frozen sentence
encoder), vision (EfficientNet-Lite0, cut anywhere), finetuning (02), ner_re and multitask (03), federated, transport
and banks (04), metrics, results (headline numbers), claims (claims vs evidence), plots."""

__version__ = "0.1.0"
