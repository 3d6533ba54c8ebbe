"""Trust and safety: untrusted text kept as data, injection findings, public-URL checks, personal-data masking.

A leaf package: it imports settings and errors only, so every layer that handles text may use it.
"""
