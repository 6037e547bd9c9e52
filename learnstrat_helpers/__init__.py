"""learnstrat_helpers: the plumbing behind the notebooks, no side effects on import. One module per concept: profiles,
assets, datasets, training (the one loop), text, vision (01), finetuning (02), ner_re and multitask (03), federated,
transport, banks and keyboard (04), metrics, results, claims, plots, exercises (their checks)."""

__version__ = "0.1.0"
