//! Range checks of numeric parameters, shared by the DP encoding and the accountants; each
//! module's error converts [`InvalidParameter`] into its own `InvalidParameter` variant.

/// A numeric parameter outside its valid range (or not finite).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameter `{name}` = {value}: {expected}")]
pub struct InvalidParameter {
    /// The parameter's name as in the API.
    pub name: &'static str,
    /// The rejected value.
    pub value: f64,
    /// What a valid value looks like.
    pub expected: &'static str,
}

/// Implements `From<InvalidParameter>` for a module error whose `InvalidParameter` variant has
/// the same three fields, so `?` on [`check_range`] works in every module that checks
/// parameters while each module keeps its own public variant.
macro_rules! impl_from_invalid_parameter {
    ($error:ty) => {
        impl From<$crate::param::InvalidParameter> for $error {
            fn from(p: $crate::param::InvalidParameter) -> Self {
                Self::InvalidParameter {
                    name: p.name,
                    value: p.value,
                    expected: p.expected,
                }
            }
        }
    };
}
pub(crate) use impl_from_invalid_parameter;

/// Rejects a value that is not finite or not inside `[lo, hi]`.
pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<f64, InvalidParameter> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(InvalidParameter {
            name,
            value,
            expected,
        })
    }
}

/// Rejects a value that is not finite and strictly positive.
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<f64, InvalidParameter> {
    check_range(
        name,
        value,
        f64::MIN_POSITIVE,
        f64::MAX,
        "a finite number > 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_non_finite_values_fail() {
        assert_eq!(check_range("p", 1.0, 0.0, 1.0, "in [0, 1]"), Ok(1.0));
        assert!(check_range("p", f64::NAN, 0.0, 1.0, "in [0, 1]").is_err());
        assert!(check_range("p", 1.5, 0.0, 1.0, "in [0, 1]").is_err());
        assert!(check_positive("s", 0.0).is_err());
        assert!(check_positive("s", f64::INFINITY).is_err());
        let err = check_positive("sigma", -1.0).unwrap_err();
        assert_eq!((err.name, err.value), ("sigma", -1.0));
    }
}
