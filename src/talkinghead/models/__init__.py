"""Networks, one file per paper block (and the pretrained helper networks they rely on)."""
