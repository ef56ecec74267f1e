//! CNAF VRSB0801 beneficiary file reader and its simulator
