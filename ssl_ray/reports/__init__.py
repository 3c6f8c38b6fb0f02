"""Figures and tables read back from MLflow."""
