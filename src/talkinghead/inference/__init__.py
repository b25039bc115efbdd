"""Inference only: animate a person from a driving video with a trained model."""
