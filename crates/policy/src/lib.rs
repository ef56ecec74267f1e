//! GDPR flows: loader, minimisation, denial, Art. 30 register
