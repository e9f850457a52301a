"""The sizes and rates every part of aecodec accepts: a frame side up to MAX_SIDE pixels, frame
rates from one an hour to 1000 a second in terms FFmpeg's muxers take. The .aec header, bundles,
the video reader and the player all check against these."""

from fractions import Fraction

MAX_SIDE = 16384
MIN_FPS, MAX_FPS, MAX_FPS_DENOMINATOR = Fraction(1, 3600), Fraction(1000), 1001 * 1000
