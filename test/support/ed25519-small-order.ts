/**
 * Encodings of the eight small-order (8-torsion) Ed25519 points: the canonical ones, and the
 * non-canonical spellings (y >= p, or x = 0 with the sign bit set) that lenient decoders accept.
 */
export const SMALL_ORDER_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity (order 1)
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = -1 (order 2)
  '0000000000000000000000000000000000000000000000000000000000000000', // y = 0 (order 4)
  '0000000000000000000000000000000000000000000000000000000000000080', // y = 0, other x (order 4)
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
];

export const SMALL_ORDER_NON_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000080', // identity, x = 0 with sign bit
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = -1, x = 0 with sign bit
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1: identity
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = p + 1, sign bit
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p: order 4
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = p, other x
];

/** A point of large order spelled with a non-canonical y (p + 3 for y = 3). */
export const NON_CANONICAL_LARGE_ORDER = 'f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f';
