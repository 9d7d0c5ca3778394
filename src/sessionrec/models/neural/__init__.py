"""Neural session models, trained with PyTorch (the optional ``torch`` extra).

Importing this package never imports torch: a model class can be registered, constructed
and listed without it, and only fitting or loading one needs torch (a :class:`ConfigError`
tells how to install it). Where things are:

- one file per model, network first, then the estimator: :mod:`.gru4rec`, :mod:`.sasrec`,
  :mod:`.narm`, :mod:`.stamp`, :mod:`.srgnn` (the last three on the base of :mod:`.prefix`);
- :mod:`.common`: :class:`~.common.NeuralRecommender`, the base that owns the training
  hyperparameters and the training skeleton (validation split, sharding, seeding, epochs,
  history), and what the models share around it;
- each model's epoch, away from the model: :mod:`.gru4rec_training`,
  :mod:`.prefix_training`, :mod:`.sasrec_training`;
- what training is made of: :mod:`.trainer` (seeding, the epoch loop with early stopping and
  NaN detection), :mod:`.devices`, :mod:`.adagrad` (GRU4Rec's optimiser), :mod:`.losses`
  (cross-entropy with logQ correction, BPR-max), :mod:`.sampling` (popularity^alpha
  negatives), :mod:`.distributed` (several processes, ``torchrun``);
- :mod:`.fine_tune`: what fine-tuning a trained model on newer sessions needs (the
  vocabulary with the new items appended, the weights copied over, the architecture check);
  :meth:`~.common.NeuralRecommender.fine_tune` runs it (``docs/fine-tuning.md``);
- :mod:`.quantized_serving`: a few live sessions served through an int8 item table;
- ``presets/``: GRU4Rec's tuned hyperparameters by dataset, as JSON.
"""
