//! The extensions rcgen has no field for, as `x509-cert` types encoded with `der`: Authority
//! Information Access (OCSP and caIssuers URLs), certificatePolicies, and id-pkix-ocsp-nocheck
//! for the delegated OCSP responders. rcgen places the DER we hand it as the extnValue.

use const_oid::db::rfc5280::{
    ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_CE_CERTIFICATE_POLICIES, ID_CE_EXT_KEY_USAGE, ID_KP_TIME_STAMPING,
    ID_PE_AUTHORITY_INFO_ACCESS,
};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, Null};
use rcgen::CustomExtension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax, CertificatePolicies, ExtendedKeyUsage};

use super::CaError;
use crate::asn1;

/// The arcs of an OID for rcgen (it takes `&[u64]`).
fn arcs(oid: ObjectIdentifier) -> Vec<u64> {
    oid.arcs().map(u64::from).collect()
}

/// A URL as an IA5String (RFC 5280 §4.2.1.6): a non-ASCII URL is refused, not mis-encoded.
fn uri(url: &str) -> Result<GeneralName, CaError> {
    Ia5String::new(url)
        .map(GeneralName::UniformResourceIdentifier)
        .map_err(|e| CaError::Build(format!("URL {url:?} is not an IA5String: {e}")))
}

/// AIA with an OCSP responder URL (optional) and a caIssuers URL; non-critical (RFC 5280).
pub fn authority_information_access(ocsp_url: Option<&str>, ca_issuers_url: &str) -> Result<CustomExtension, CaError> {
    let mut access = Vec::with_capacity(2);
    if let Some(url) = ocsp_url {
        access.push(AccessDescription { access_method: ID_AD_OCSP, access_location: uri(url)? });
    }
    access.push(AccessDescription { access_method: ID_AD_CA_ISSUERS, access_location: uri(ca_issuers_url)? });
    let value = asn1::encode(&AuthorityInfoAccessSyntax(access));
    Ok(CustomExtension::from_oid_content(&arcs(ID_PE_AUTHORITY_INFO_ACCESS), value))
}

/// certificatePolicies with one PolicyInformation per OID, no qualifiers; non-critical.
pub fn certificate_policies(oids: &[Vec<u64>]) -> Result<CustomExtension, CaError> {
    let mut policies = Vec::with_capacity(oids.len());
    for o in oids {
        let dotted = o.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
        let policy_identifier =
            ObjectIdentifier::new(&dotted).map_err(|e| CaError::Build(format!("policy OID {dotted}: {e}")))?;
        policies.push(PolicyInformation { policy_identifier, policy_qualifiers: None });
    }
    let value = asn1::encode(&CertificatePolicies(policies));
    Ok(CustomExtension::from_oid_content(&arcs(ID_CE_CERTIFICATE_POLICIES), value))
}

/// extendedKeyUsage with id-kp-timeStamping alone, critical (RFC 3161 §2.3: "the
/// corresponding certificate MUST contain only one instance of the extended key usage field
/// extension ... with KeyPurposeID having value id-kp-timeStamping. This extension MUST be
/// critical."). rcgen writes its own EKU non-critical, so this one is built here.
pub fn time_stamping_only() -> CustomExtension {
    let value = asn1::encode(&ExtendedKeyUsage(vec![ID_KP_TIME_STAMPING]));
    let mut extension = CustomExtension::from_oid_content(&arcs(ID_CE_EXT_KEY_USAGE), value);
    extension.set_criticality(true);
    extension
}

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients need not check the responder's status.
pub fn ocsp_nocheck() -> CustomExtension {
    CustomExtension::from_oid_content(&arcs(ID_PKIX_OCSP_NOCHECK), asn1::encode(&Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_urls_are_refused() {
        assert!(authority_information_access(None, "http://例え.jp/ca.cer").is_err());
        let aia = authority_information_access(Some("http://ocsp.test/"), "http://ca.test/ca.cer").unwrap();
        assert_eq!(aia.content()[0], 0x30);
    }

    #[test]
    fn policies_encode_as_x509_cert_decodes_them() {
        use der::Decode;
        let ext = certificate_policies(&[vec![1, 2, 156, 112559, 1, 1]]).unwrap();
        let decoded = CertificatePolicies::from_der(ext.content()).unwrap();
        assert_eq!(decoded.0[0].policy_identifier.to_string(), "1.2.156.112559.1.1");
    }
}
