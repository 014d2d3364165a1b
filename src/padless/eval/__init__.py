"""Evaluation: WER / BLEU with the Open ASR Leaderboard normalisation (`evaluate`, `scores`,
`normalize`) and training-run reports (`plot_run`)."""
