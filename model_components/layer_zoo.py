"""The INR layer zoo beyond ReLU and SIREN (filled in by the layer-zoo work; see issue 5)."""
