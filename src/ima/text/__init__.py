"""Text analysis shared by ingest, search, answers and trends: `analysis` (a text → the
index's terms), `mecab` (the Japanese taggers), `sentences` (whole sentences, EN and
JA), `question` (what a question asks: key words, names, gaps, window, language, stop
words), `romaji` (Japanese readings in Latin letters), `copies` (manual retweets and
whose words a post repeats)."""
