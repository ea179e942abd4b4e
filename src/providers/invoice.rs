//! Electronic invoices (fapiao) for paid orders, issued by the tax platform's provider.
//!
//! The sandbox numbers invoices like the real ones (20 digits), renders a PDF marked as a
//! sandbox invoice, and follows [`super::sandbox_behaviour`] on the buyer's tax ID.

use rand::Rng;

use super::{sandbox_answer, sandbox_behaviour, Behaviour, ProviderError, ProviderFuture};

/// The provider name in errors and metrics.
const PROVIDER: &str = "invoice";

/// The title printed on sandbox invoices, so nobody mistakes one for a real invoice.
pub const SANDBOX_TITLE: &str = "电子发票（沙箱）/ e-invoice (sandbox)";

/// What to invoice and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// Our order id, printed on the invoice.
    pub order_id: String,
    /// The buyer's name (person or company) as registered.
    pub title: String,
    /// The buyer's taxpayer ID (unified social credit code).
    pub tax_id: String,
    /// The goods or service line.
    pub item: String,
    /// The amount, in fen.
    pub amount_fen: i64,
}

/// An issued invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The 20-digit invoice number.
    pub number: String,
    /// The invoice as PDF.
    pub pdf: Vec<u8>,
    /// Unix seconds of issue.
    pub issued_at: i64,
}

/// An e-invoice provider, so billing does not depend on one tax platform vendor.
pub trait InvoiceProvider: Send + Sync {
    /// Issues an invoice for a paid order.
    fn issue<'a>(&'a self, request: &'a InvoiceRequest) -> ProviderFuture<'a, Invoice>;
    /// Voids invoice `number` (issued for `request`) with a red-letter invoice (红字发票, the
    /// same amount negative), as the tax platform requires before an invoice is issued again.
    fn void<'a>(&'a self, number: &'a str, request: &'a InvoiceRequest) -> ProviderFuture<'a, Invoice>;
}

/// The sandbox invoice provider.
pub struct SandboxInvoice;

impl InvoiceProvider for SandboxInvoice {
    fn issue<'a>(&'a self, request: &'a InvoiceRequest) -> ProviderFuture<'a, Invoice> {
        Box::pin(async move {
            if sandbox_answer(PROVIDER, sandbox_behaviour(&request.tax_id)).await? == Behaviour::Mismatch {
                return Err(ProviderError::Refused("the tax ID is not registered to the invoice title".into()));
            }
            validate(request)?;
            let issued_at = time::OffsetDateTime::now_utc();
            let number = invoice_number(issued_at.date());
            let pdf = crate::pdf::render(&document(request, &number, issued_at));
            Ok(Invoice { number, pdf, issued_at: issued_at.unix_timestamp() })
        })
    }

    fn void<'a>(&'a self, number: &'a str, request: &'a InvoiceRequest) -> ProviderFuture<'a, Invoice> {
        Box::pin(async move {
            sandbox_answer(PROVIDER, sandbox_behaviour(&request.tax_id)).await?;
            if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProviderError::Refused(format!("no invoice {number} to void")));
            }
            validate(request)?;
            let issued_at = time::OffsetDateTime::now_utc();
            let red = invoice_number(issued_at.date());
            let negative = InvoiceRequest { amount_fen: -request.amount_fen, ..request.clone() };
            let mut doc = document(&negative, &red, issued_at);
            doc.title = format!("红字发票 / credit note · {SANDBOX_TITLE}");
            doc.sections[0].rows.push(("冲红原发票号码 / Voids invoice".into(), number.to_string()));
            Ok(Invoice { number: red, pdf: crate::pdf::render(&doc), issued_at: issued_at.unix_timestamp() })
        })
    }
}

/// Refuses what the tax platform would refuse: no buyer title or item, a non-positive amount.
fn validate(request: &InvoiceRequest) -> Result<(), ProviderError> {
    let refused = |reason: &str| Err(ProviderError::Refused(reason.to_string()));
    if request.title.trim().is_empty() {
        refused("the invoice title is empty")
    } else if request.item.trim().is_empty() {
        refused("the invoice item is empty")
    } else if request.amount_fen <= 0 {
        refused("the invoice amount must be positive")
    } else {
        Ok(())
    }
}

/// A 20-digit invoice number: the issue date (YYYYMMDD) and 12 random digits.
fn invoice_number(date: time::Date) -> String {
    let serial: u64 = rand::thread_rng().gen_range(0..1_000_000_000_000);
    format!("{:04}{:02}{:02}{serial:012}", date.year(), u8::from(date.month()), date.day())
}

/// The invoice's printed content.
fn document(request: &InvoiceRequest, number: &str, issued_at: time::OffsetDateTime) -> crate::pdf::Document {
    let row = |label: &str, value: String| (label.to_string(), value);
    let rows = vec![
        row("发票号码 / Number", number.to_string()),
        row("开票日期 / Issued", issued_at.date().to_string()),
        row("购买方 / Buyer", request.title.clone()),
        row("纳税人识别号 / Tax ID", request.tax_id.clone()),
        row("项目 / Item", request.item.clone()),
        row("金额 / Amount", format_yuan(request.amount_fen)),
        row("订单号 / Order", request.order_id.clone()),
    ];
    let section = crate::pdf::Section { heading: "发票信息 / Invoice".to_string(), rows };
    crate::pdf::Document { title: SANDBOX_TITLE.to_string(), sections: vec![section] }
}

/// Fen as "¥12.34".
fn format_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}¥{}.{:02}", fen.unsigned_abs() / 100, fen.unsigned_abs() % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tax_id: &str) -> InvoiceRequest {
        InvoiceRequest {
            order_id: "order-7".into(),
            title: "示例有限公司".into(),
            tax_id: tax_id.into(),
            item: "数字证书 / certificate".into(),
            amount_fen: 19900,
        }
    }

    #[tokio::test]
    async fn invoices_get_twenty_digit_numbers() {
        let first = SandboxInvoice.issue(&request("91110000123456789X")).await.unwrap_or_else(|e| panic!("{e}"));
        let second = SandboxInvoice.issue(&request("91110000123456789X")).await.unwrap_or_else(|e| panic!("{e}"));
        for invoice in [&first, &second] {
            assert_eq!(invoice.number.len(), 20, "{}", invoice.number);
            assert!(invoice.number.chars().all(|c| c.is_ascii_digit()));
            assert!((invoice.issued_at - crate::clock::unix_now()).abs() <= 2);
        }
        assert_ne!(first.number, second.number);
        let today = time::OffsetDateTime::from_unix_timestamp(first.issued_at).map(|t| t.date());
        let prefix = today.map(|d| format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day()));
        assert_eq!(prefix.ok().as_deref(), Some(&first.number[..8]));
    }

    #[tokio::test]
    async fn a_red_letter_invoice_voids_an_issued_number_with_the_amount_negative() {
        let request = request("91110000123456789X");
        let issued = SandboxInvoice.issue(&request).await.unwrap_or_else(|e| panic!("{e}"));
        let red = SandboxInvoice.void(&issued.number, &request).await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(red.number, issued.number);
        assert_eq!(red.number.len(), 20);
        assert!(red.pdf.starts_with(b"%PDF-"));
        let refused = SandboxInvoice.void("12345", &request).await;
        assert!(matches!(refused, Err(ProviderError::Refused(_))), "no such invoice");
    }

    #[tokio::test]
    async fn tax_ids_follow_the_sandbox_rule() {
        let down = SandboxInvoice.issue(&request("911100001234569999")).await;
        assert_eq!(down, Err(ProviderError::Unavailable("invoice".into())));
        let mismatch = SandboxInvoice.issue(&request("911100001234560000")).await;
        assert!(matches!(mismatch, Err(ProviderError::Refused(_))), "{mismatch:?}");
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let mut zero = request("91110000123456789X");
        zero.amount_fen = 0;
        assert!(matches!(SandboxInvoice.issue(&zero).await, Err(ProviderError::Refused(_))));
        let mut untitled = request("91110000123456789X");
        untitled.title = " ".into();
        assert!(matches!(SandboxInvoice.issue(&untitled).await, Err(ProviderError::Refused(_))));
    }

    #[test]
    fn the_document_carries_the_invoice() {
        let doc = document(&request("91110000123456789X"), "20250101000000000001", time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(doc.title, SANDBOX_TITLE);
        let rows = &doc.sections[0].rows;
        assert!(rows.contains(&("金额 / Amount".to_string(), "¥199.00".to_string())));
        assert!(rows.contains(&("发票号码 / Number".to_string(), "20250101000000000001".to_string())));
        assert_eq!(format_yuan(5), "¥0.05");
        assert_eq!(format_yuan(-123), "-¥1.23");
    }
}
