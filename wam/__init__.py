"""WAM: the Wavelet Attribution Method (Kasmi et al., ICML 2025) for 1D, 2D and 3D inputs."""
