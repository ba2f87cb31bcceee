"""Hyperparameter tuning: Vizier-style studies on Optuna, stored in the metadata store's database.

    config = StudyConfig.from_dict(yaml.safe_load(open("study.yaml")))
    study = Study.create("churn-mlp", config, url=store_url)
    study.optimize(TrialTarget("module:ratchet.training.tabular", dataset=...), max_trials=20)
    study.best_trials()

`space` holds the search space, `study` the study and its ask/tell form, `trials` the
running of trials as training jobs, `warmstart` seeding a study from an earlier one.
"""
