"""Serving: the REST API that ingests events and answers "where is my car?"."""
