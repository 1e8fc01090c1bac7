"""Speech in and out, offline: decode uploaded audio, transcribe it, synthesize answers.

Models come from installed packages only (see `stt` and `tts`); nothing is fetched at
run time.
"""
