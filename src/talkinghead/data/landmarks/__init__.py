"""Face detection and landmark backends (mediapipe, dlib68, fan) behind one interface."""
