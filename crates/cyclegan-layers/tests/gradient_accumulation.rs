//! The workspace builds candle-core with a patched backward pass (`vendor/README.md`): the first
//! gradient to reach a tensor is stored as it comes instead of being added into zeros. These
//! tests pin down what that must keep: gradients summed over every use of a tensor, stored
//! contiguous when they arrive as views of something larger, and kept in their order when they
//! arrive dense in another (a channels-last gradient; the ops that read them make them contiguous
//! when they need to).

use candle_core::{Device, Result, Tensor, Var};

fn values(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_vec1::<f64>()
}

#[test]
fn gradients_add_up_over_every_use() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[[1f64, 2., 3.], [4., 5., 6.]], &dev)?;
    let a = Tensor::new(&[[0.5f64, -1., 2.], [3., 0.25, -2.]], &dev)?;
    let xs = x.as_tensor();
    // y = sum(x * a + x + 2 x (through two transposes) + (x + x)): dy/dx = a + 5.
    let y = ((xs.mul(&a)? + xs)? + (xs.t()?.t()? * 2.)?)?;
    let y = (y + (xs + xs)?)?.sum_all()?;
    let grads = y.backward()?;
    let gx = grads.get(xs).expect("x has a gradient");
    let want: Vec<f64> = values(&a)?.iter().map(|v| v + 5.0).collect();
    assert_eq!(values(gx)?, want);
    assert!(gx.is_contiguous());
    Ok(())
}

#[test]
fn a_gradient_arriving_as_a_view_of_more_is_stored_contiguous() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[[1f64, 2., 3.], [4., 5., 6.]], &dev)?;
    let z = Tensor::new(&[[7f64], [8.]], &dev)?;
    let w = Tensor::new(&[[1f64, -2., 3., 4.], [-5., 6., 7., -8.]], &dev)?;
    // Concatenation's backward pass hands x a narrowed view of the larger gradient.
    let y = Tensor::cat(&[x.as_tensor(), &z], 1)?.mul(&w)?.sum_all()?;
    let grads = y.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    assert!(gx.is_contiguous(), "stored as a strided view");
    assert_eq!(gx.dims(), &[2, 3]);
    assert_eq!(values(gx)?, values(&w.narrow(1, 0, 3)?)?);
    Ok(())
}

#[test]
fn a_permuted_gradient_keeps_its_order_and_sums_in_it() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[[1f64, 2., 3.], [4., 5., 6.]], &dev)?;
    let w = Tensor::new(&[[1f64, -2.], [3., 4.], [-5., 6.]], &dev)?;
    let v = Tensor::new(&[[0.5f64, 1.], [-1., 2.], [3., -0.25]], &dev)?;
    // x reaches the loss through two transposes: both gradients arrive as transposed views
    // (dense, in the other order), which a channels-last path relies on not being copied.
    let xt = x.as_tensor().t()?;
    let y = (xt.mul(&w)?.sum_all()? + xt.mul(&v)?.sum_all()?)?;
    let grads = y.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    assert_eq!(gx.dims(), &[2, 3]);
    assert!(!gx.is_contiguous(), "transposed back to x's order");
    assert_eq!(gx.stride(), &[1, 2]);
    assert_eq!(values(gx)?, values(&(w + v)?.t()?)?);
    Ok(())
}

#[test]
fn a_single_use_gets_exactly_its_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::new(&[-0.0f64, 1.5, -2.25], &dev)?;
    let y = (x.as_tensor() * 3.)?.sum_all()?;
    let grads = y.backward()?;
    let gx = grads.get(x.as_tensor()).expect("x has a gradient");
    assert_eq!(values(gx)?, [3.0, 3.0, 3.0]);
    Ok(())
}
