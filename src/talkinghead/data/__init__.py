"""Data: video I/O, face landmarks, cropping, segmentation, dataset preparation, episodes."""
