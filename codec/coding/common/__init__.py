"""What the decoder and the encoder both run: the stream format, entropy coding and its contexts,
the transform, motion compensation, the residual and motion syntax, and the networks' runtime.

A player runs this room, ``codec.coding.decoder`` and ``codec.coding.kernels``, nothing else of
coding; the encoder builds on the same code so its reconstruction is the decoder's, bit for bit.
"""
