"""Why ShopSight decided what it decided: SHAP word attributions and Grad-CAM heatmaps."""
