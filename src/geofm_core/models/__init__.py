"""Models: the contracts, model classes, factories and core components."""
