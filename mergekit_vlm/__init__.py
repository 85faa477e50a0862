"""mergekit-vlm: bring reasoning to vision-language models by merging, inside stock mergekit.

Importing this package is cheap on purpose (it runs at interpreter start-up through a
``.pth`` file): nothing here imports torch, transformers or mergekit.
"""

__version__ = "0.1.0"
