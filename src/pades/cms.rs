//! B-T: the signature timestamp (RFC 3161 token over the SignerInfo's signature value) added to
//! a detached CMS as the unsigned attribute id-aa-signatureTimeStampToken (RFC 3161 appendix A,
//! ETSI EN 319 122-1 §5.3).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, SetOfVec};
use der::{Decode, Encode};
use sha2::Digest;

use super::PadesError;

/// id-aa-signatureTimeStampToken.
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

fn bad(what: &str) -> impl Fn(der::Error) -> PadesError + '_ {
    move |e| PadesError::Container(format!("{what}: {e}"))
}

fn signed_data(cms_der: &[u8]) -> Result<SignedData, PadesError> {
    let info = ContentInfo::from_der(cms_der).map_err(bad("CMS"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(PadesError::Container("not a SignedData".into()));
    }
    info.content.decode_as::<SignedData>().map_err(bad("SignedData"))
}

/// SHA-256 of the only SignerInfo's signature value: the message imprint a signature
/// timestamp must carry.
pub fn signature_digest(cms_der: &[u8]) -> Result<[u8; 32], PadesError> {
    let signed = signed_data(cms_der)?;
    let info = signed.signer_infos.0.iter().next().ok_or_else(|| PadesError::Container("no SignerInfo".into()))?;
    Ok(sha2::Sha256::digest(info.signature.as_bytes()).into())
}

/// The token (a DER ContentInfo) from a TimeStampResp, when it was granted.
pub fn token_of(reply_der: &[u8]) -> Result<Vec<u8>, PadesError> {
    let reply = crate::tsa::token::TimeStampResp::from_der(reply_der).map_err(bad("TimeStampResp"))?;
    if reply.status.status > 1 {
        let text = reply.status.status_string.unwrap_or_default().join("; ");
        return Err(PadesError::Container(format!("the timestamp authority refused: {text}")));
    }
    let token = reply.time_stamp_token.ok_or_else(|| PadesError::Container("no timestamp token".into()))?;
    token.to_der().map_err(bad("token"))
}

/// The CMS with `token_der` added as the signature timestamp of its SignerInfo.
pub fn with_signature_timestamp(cms_der: &[u8], token_der: &[u8]) -> Result<Vec<u8>, PadesError> {
    let mut signed = signed_data(cms_der)?;
    let token = Any::from_der(token_der).map_err(bad("token"))?;
    let attribute = crate::signing::cms::attribute(ID_AA_SIGNATURE_TIME_STAMP_TOKEN, &token)
        .map_err(|e| PadesError::Container(e.to_string()))?;
    let mut infos: Vec<_> = signed.signer_infos.0.into_vec();
    let [info] = infos.as_mut_slice() else {
        return Err(PadesError::Container("exactly one SignerInfo expected".into()));
    };
    info.unsigned_attrs = Some(SetOfVec::from_iter([attribute]).map_err(bad("attributes"))?);
    signed.signer_infos = cms::signed_data::SignerInfos(SetOfVec::from_iter(infos).map_err(bad("SignerInfos"))?);
    let content = Any::encode_from(&signed).map_err(bad("SignedData"))?;
    ContentInfo { content_type: ID_SIGNED_DATA, content }.to_der().map_err(bad("ContentInfo"))
}
