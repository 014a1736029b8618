"""Analysis and diagnostics beside the leaderboard: layer-wise GSNR, the SAM-radius sweep, reproducing a result.
"""
