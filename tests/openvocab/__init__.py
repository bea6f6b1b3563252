"""Open-vocabulary tests."""
