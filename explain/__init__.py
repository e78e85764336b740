"""Why ShopSight decided what it decided: SHAP word attributions and Grad-CAM heatmaps.

- `text_shap`: word attributions for any batched text score (sentiment, intent, escalation),
  as JSON and HTML highlights; text is redacted first.
- `gradcam`: heatmaps of a photo for its category and for its similarity to a catalogue image.
- `render`: heatmap overlays and photo | catalogue pictures as PNG.
- `faithfulness`: deletion tests that check an explanation against random ones.
"""
