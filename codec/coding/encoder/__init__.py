"""What only the encoder runs: the encode loop, keyframe choice, motion search and the inter-frame
decisions. Nothing a player or the decode side runs imports this room."""
