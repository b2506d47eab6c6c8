"""Representative subsets of a split: examples evenly spaced through it.

Static binarized MNIST's test split is sorted by class (it starts with about a thousand
zeros), so its first examples are not a sample of it: the information suite's estimates
and the image grids take examples evenly spaced through the split instead.
"""


def stride(num_available, num):
  """The spacing of `spread`: `num` examples evenly spaced through `num_available`."""
  return max(num_available // max(num, 1), 1)


def spread(images, num):
  """`num` examples of `images` evenly spaced through it (every `stride`-th, from the
  first), or all of them if there are no more than `num`. A class-sorted split shows every
  class in proportion."""
  return images[::stride(images.shape[0], num)][:num]
