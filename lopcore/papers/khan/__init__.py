"""Khan et al., "Loss of Plasticity in Recurrent Models": figures, claims, plotting."""
