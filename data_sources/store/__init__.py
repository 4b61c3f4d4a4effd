"""Plumbing at the bottom of the house: the engine and sessions (``db``), the read-model cache
(``cache``) and the migrations runner (``migrate``). Imports nothing of the project above it."""
