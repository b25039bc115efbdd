"""``talkinghead app``: a local web page (Gradio) over the animation job.

Top of the import layering, next to the CLI: it uses the inference API and nothing imports it.
"""
