"""Why ShopSight decided what it decided: SHAP word attributions and Grad-CAM heatmaps.

Layer 2: imports `retrieval` and `knowledge_base`, never the assistant; what it needs from the
assistant (the escalation policy, redacted text) is passed in.

- `types`: the attribution and heatmap views, and the escalation-policy seam.
- `text_shap`: word attributions for any batched text score (sentiment, intent, escalation),
  as JSON and HTML highlights, of text the caller has redacted.
- `gradcam`: heatmaps of a photo for its category and for its similarity to a catalogue image.
- `render`: heatmap overlays and photo | catalogue pictures as PNG.
- `faithfulness`: deletion tests that check an explanation against random ones.
- `pack`: the explanations of one turn, from the caller's scorers.
"""
