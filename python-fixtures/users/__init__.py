"""The deployment's `users` app: the model `export_users` reads."""
