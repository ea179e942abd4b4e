//! The extensions rcgen has no field for, encoded with [`crate::asn1`]: Authority Information
//! Access (OCSP and caIssuers URLs), certificatePolicies, and id-pkix-ocsp-nocheck for the
//! delegated OCSP responders.

use rcgen::CustomExtension;

use crate::asn1;

const AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
const AD_CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];
const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
const OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// AIA with an OCSP responder URL (optional) and a caIssuers URL; non-critical (RFC 5280).
pub fn authority_information_access(ocsp_url: Option<&str>, ca_issuers_url: &str) -> CustomExtension {
    let access = |method: &[u64], url: &str| {
        // GeneralName uniformResourceIdentifier [6] IA5String, implicit
        asn1::sequence(&[&asn1::oid(method), &asn1::context(6, false, url.as_bytes())])
    };
    let mut parts = Vec::new();
    if let Some(url) = ocsp_url {
        parts.push(access(AD_OCSP, url));
    }
    parts.push(access(AD_CA_ISSUERS, ca_issuers_url));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    CustomExtension::from_oid_content(AIA, asn1::sequence(&refs))
}

/// certificatePolicies with one PolicyInformation per OID, no qualifiers; non-critical.
pub fn certificate_policies(oids: &[Vec<u64>]) -> CustomExtension {
    let infos: Vec<Vec<u8>> = oids.iter().map(|o| asn1::sequence(&[&asn1::oid(o)])).collect();
    let refs: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    CustomExtension::from_oid_content(CERTIFICATE_POLICIES, asn1::sequence(&refs))
}

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients need not check the responder's status.
pub fn ocsp_nocheck() -> CustomExtension {
    CustomExtension::from_oid_content(OCSP_NOCHECK, asn1::tlv(asn1::tag::NULL, &[]))
}
