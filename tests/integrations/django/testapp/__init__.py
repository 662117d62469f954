"""A minimal Django app for lagless's Django tests: one model, no migrations."""
