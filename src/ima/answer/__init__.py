"""The answer stage: retrieve evidence, compose a cited answer, in a voice."""
