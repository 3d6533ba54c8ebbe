"""What copy is made of: content types, languages, scripts and platform limits, and the text measures that the
brand kit and the QA gate both use (so the brand kit never imports the gate)."""
